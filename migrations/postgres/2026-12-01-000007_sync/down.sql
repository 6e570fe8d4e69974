DROP TABLE reconcile_items;
DROP TABLE sync_run_errors;
DROP TABLE sync_runs;
DROP TABLE sync_jobs;
