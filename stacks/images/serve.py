"""The images a stack's replicas run from, as the launcher needs them.

    images = StackImages(spec)        # spec.image.mode: eager or lazy
    opened = images.open()            # built and pushed first if missing or stale
    ... replicas run runtime_python(opened.root) with runtime_env(...) ...
    images.record_plan()              # after the first lazy start: its blocks, for the next
    images.close()                    # unmount, stop fetchers and the registry it started

A spec deploys itself: the image is built (`stacks.images.build`) when there is none for what
the stack serves now, pushed to the registry, and opened on this node. The registry is this
machine's (`stacks.images.registry`, default bandwidth and latency) unless the caller brings
one with other settings.
"""

from __future__ import annotations

from collections.abc import Callable

from stacks.errors import ImageError
from stacks.images.build import build_image, built_dir
from stacks.images.node import Mode, NodeImages, OpenedImage
from stacks.images.prefetch import publish
from stacks.images.registry import Registry, push
from stacks.spec import PROJECT_ROOT, StackSpec

REGISTRY_DIR = PROJECT_ROOT / "images" / "registry"


class StackImages:
    def __init__(self, spec: StackSpec, registry: Registry | None = None,
                 node: NodeImages | None = None,
                 say: Callable[[str], None] = lambda _: None) -> None:
        if spec.image.mode == "none":
            raise ImageError(f"stack {spec.name} runs from this machine (image.mode: none)")
        self.spec = spec
        self.mode: Mode = spec.image.mode
        self.owns_registry = registry is None
        self.registry = registry or Registry(REGISTRY_DIR)
        self.owns_node = node is None
        self.node = node
        self.say = say

    def open(self) -> OpenedImage:
        """The image, opened on this node (fetched or mounted the first time)."""
        build_image(self.spec, self.say)
        push(built_dir(self.spec.name) / "manifest.json", self.registry.root)
        if self.registry.process is None:
            self.registry.start()
        if self.node is None:
            self.node = NodeImages(self.registry.url)
        return self.node.open(self.spec.name, self.mode, self.spec.image.prefetch,
                              self.spec.image.file_system)

    def record_plan(self) -> None:
        """After a lazy start without a prefetch plan: the blocks it fetched become its
        image's plan in the registry, for the next start on any node."""
        if self.node is None or (plan := self.node.record_plan(self.spec.name)) is None:
            return
        publish(plan, self.registry.root)
        self.say(f"{self.spec.name}: recorded the {len(plan.blocks)} blocks its image's first "
                 "lazy start read; later lazy starts prefetch them")

    def fetch_failure(self) -> str:
        return self.node.fetch_failure(self.spec.name) if self.node is not None else ""

    def close(self) -> None:
        """Unmount and stop what this object started; a node or registry the caller brought
        stays as it is (a second start on it is warm)."""
        if self.node is not None and self.owns_node:
            self.node.close()
        if self.owns_registry:
            self.registry.stop()
