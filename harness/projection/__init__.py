"""The fleet projection (`harness project`, docs/projection.md): a discrete-event simulation
of replicas behind a balancer, calibrated on this machine's capacity probes, then carried to
a target rate. Every figure it prints says whether it was measured, simulated or projected."""
