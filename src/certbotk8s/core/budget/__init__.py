"""The CA's rate limits as a budget, and the ledger that keeps it."""
