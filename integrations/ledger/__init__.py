"""The balance ledger as flow actions: show a balance, grant credits once."""
