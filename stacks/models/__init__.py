"""The models a stack serves: the embedded tiny Llama, its W8A8 copies, and `prepare(spec)`.
Callers outside this package import `stacks.models.prepare` only."""
