"""`certbotk8s controller`: informers, reconcile, the order runner, schedules, sweeps."""
