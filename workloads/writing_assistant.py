"""Writing-assistant traffic: short prompts ("Fix the grammar: ...", "Rephrase this: ...") and
short completions, replayed open loop from a schedule.

    harness schedule writing_assistant --out schedule.jsonl
    locust -f workloads/writing_assistant.py --host http://127.0.0.1:8000 --headless \\
        --schedule schedule.jsonl --records records.jsonl

Without `--schedule` it replays `workloads/schedules/writing_assistant.jsonl` (10 QPS for 70 s).
The API (`/v1/completions` or `/v1/chat/completions`), streaming and lengths come from the
schedule, so the chat variant is the same file with a chat schedule.
"""

from locust import task

from workloads.replay import ScheduledUser, ScheduleShape

__all__ = ["ScheduleShape", "WritingAssistantUser"]  # Locust finds the shape in this module


class WritingAssistantUser(ScheduledUser):
    @task
    def next_scheduled(self) -> None:
        self.send_next()
