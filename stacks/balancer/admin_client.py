"""Calls to a balancer's admin interface (`stacks.balancer.admin`), for the launcher, the
autoscaler, benches and tests: add a replica, drain one and wait until nothing is in flight
there, remove one and wait until it is gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from stacks.errors import MembershipError

POLL_S = 0.05


class BalancerAdmin:
    def __init__(self, admin_url: str, api_key: str = "", timeout_s: float = 5.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=admin_url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> BalancerAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def replicas(self) -> dict[str, dict[str, Any]]:
        """name -> {"url", "state", "inflight"}."""
        listed = self._call("GET", "/admin/replicas")["replicas"]
        return {entry["name"]: entry for entry in listed}

    def add(self, name: str, url: str) -> str:
        """Add a replica; its state ("serving", or "pending" until its first passing probe)."""
        return str(self._call("POST", "/admin/replicas", json={"name": name, "url": url})
                   ["state"])

    def drain(self, name: str, wait_s: float = 60.0) -> None:
        """Stop new requests to `name` and return once nothing is in flight there."""
        self._call("POST", f"/admin/replicas/{name}/drain")
        self._wait(lambda: self.replicas()[name]["state"] == "drained", wait_s,
                   f"{name} drained")

    def remove(self, name: str, wait_s: float = 60.0) -> None:
        """Drain `name`, and return once the balancer has forgotten it."""
        self._call("DELETE", f"/admin/replicas/{name}")
        self._wait(lambda: name not in self.replicas(), wait_s, f"{name} removed")

    @staticmethod
    def _wait(done: Callable[[], bool], wait_s: float, what: str) -> None:
        deadline = time.monotonic() + wait_s
        while not done():
            if time.monotonic() > deadline:
                raise MembershipError(f"balancer admin: not {what} within {wait_s:g} s")
            time.sleep(POLL_S)

    def _call(self, method: str, path: str, json: object = None) -> Any:
        try:
            answer = self._client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise MembershipError(f"balancer admin {method} {path}: {exc!r}") from None
        if answer.status_code >= 400:
            try:
                message = answer.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = answer.text[:200]
            raise MembershipError(f"balancer admin {method} {path}: {answer.status_code} "
                                  f"{message}", answer.status_code)
        return answer.json()
