"""`hubscore monitor`, `promote` and `rollback`: did the lists convert, and which model makes them.

A front end over the ledger (`hubscore.core.ledger`), the run folders and the newest company
files, for a cron host beside the scorer: it imports no training stack and no DuckDB.
"""
