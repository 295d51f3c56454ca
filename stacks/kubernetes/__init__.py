"""Kubernetes manifests for a stack, from the same spec `harness up` launches here
(docs/deploy.md). Each module builds plain dicts in the API's own shapes; `manifests` gathers
them and writes one YAML file per object."""
