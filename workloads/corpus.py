"""Writing-assistant text generated from a seed: emails, chat messages, grammar fixes, rewrites.

The embedded model's tokenizer is trained on this corpus, so its vocabulary fits the traffic the
workloads send. Same seed, same text, on every machine: no network, no data set download.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

NAMES = ["Alex", "Sam", "Priya", "Jordan", "Mei", "Lucas", "Fatima", "Noah", "Elena", "Kenji",
         "Olivia", "Diego", "Hannah", "Omar", "Grace", "Ivan", "Chloe", "Mateo", "Aisha", "Leo"]
TOPICS = [
    "the quarterly report", "our team meeting", "the project deadline", "the budget review",
    "the client presentation", "next week's launch", "the hiring plan", "the design draft",
    "the travel schedule", "the product roadmap", "the contract renewal", "the survey results",
    "the onboarding guide", "the marketing campaign", "the server migration",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "tomorrow", "next week",
        "this afternoon", "the end of the month"]
ACTIONS = ["review", "send", "update", "finish", "discuss", "share", "confirm", "reschedule",
           "approve", "prepare", "check", "sign"]
CLOSINGS = ["Best regards", "Thanks", "Kind regards", "Cheers", "Many thanks", "Talk soon"]
OPENERS = ["Hi", "Hello", "Dear", "Hey", "Good morning"]
TASKS = ["Fix the grammar", "Rephrase this", "Make this more formal", "Make this shorter",
         "Complete the sentence", "Make this friendlier", "Correct the spelling",
         "Summarize this", "Rewrite this politely", "Make this sound confident"]
# (wrong, right) pairs: the kinds of slips a writing assistant fixes all day.
SLIPS = [("their", "there"), ("your", "you're"), ("its", "it's"), ("then", "than"),
         ("affect", "effect"), ("could of", "could have"), ("alot", "a lot"),
         ("recieve", "receive"), ("seperate", "separate"), ("definately", "definitely"),
         ("untill", "until"), ("occured", "occurred"), ("wich", "which"), ("tommorow", "tomorrow")]

# Syllables for coined proper nouns (surnames, companies, product code names): real mail is full
# of them, and they give the tokenizer enough variety to learn a few thousand merges.
SYLLABLES = ["ka", "lo", "ven", "tra", "mi", "ro", "sen", "da", "vel", "an", "tor", "qui", "bel",
             "mar", "eni", "zo", "pra", "lin", "dor", "sa", "gre", "hal", "nu", "cor", "fi", "sta",
             "wen", "ol", "ber", "ish", "tan", "ria", "gal", "mon", "ex", "ter", "ya", "phe", "dru",
             "kin"]
SUFFIXES = ["Labs", "Group", "Systems", "Partners", "Studio", "Health", "Logistics", "Bank"]


def coined(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


SENTENCES = [
    "Could you {action} {topic} by {day}?",
    "I wanted to follow up on {topic} before {day}.",
    "{name} will {action} {topic} and send an update {day}.",
    "Please let me know if you have any questions about {topic}.",
    "We need to {action} {topic} as soon as possible.",
    "Thanks for your help with {topic}, {name}.",
    "{name} {surname} from {company} asked about {topic}.",
    "The {codename} rollout moved to {day}, so we should {action} {topic} first.",
    "I met {name} {surname} in {place} to {action} {topic}.",
]


def sentence(rng: random.Random) -> str:
    template = rng.choice(SENTENCES)
    return template.format(
        action=rng.choice(ACTIONS), topic=rng.choice(TOPICS), day=rng.choice(DAYS),
        name=rng.choice(NAMES), surname=coined(rng), codename=coined(rng), place=coined(rng),
        company=f"{coined(rng)} {rng.choice(SUFFIXES)}",
    )


def with_slip(rng: random.Random, text: str) -> str:
    right, wrong = rng.choice([(r, w) for w, r in SLIPS])
    return f"{text} I {wrong} think {right} is fine."


def email(rng: random.Random) -> str:
    body = " ".join(sentence(rng) for _ in range(rng.randint(2, 4)))
    sender, recipient = rng.sample(NAMES, 2)
    return (f"{rng.choice(OPENERS)} {recipient},\n\n{body}\n\n"
            f"{rng.choice(CLOSINGS)},\n{sender}")


def message(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 2)))


def instruction(rng: random.Random) -> str:
    text = message(rng)
    if rng.random() < 0.5:
        text = with_slip(rng, text)
    return f"{rng.choice(TASKS)}: {text}"


def documents(seed: int, count: int) -> Iterator[str]:
    """`count` documents: a mix of emails, short messages and assistant instructions."""
    rng = random.Random(seed)
    makers = (email, message, instruction, instruction)
    for _ in range(count):
        yield rng.choice(makers)(rng)
