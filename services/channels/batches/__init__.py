"""Branch-office batches: the file a representative uploads (CSV or XLSX), its rows
as intake's submissions, and the per-row result file (docs/operations.md)."""
