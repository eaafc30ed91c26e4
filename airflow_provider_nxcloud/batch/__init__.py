"""Many messages -> one result, over anything shaped like the client. Imports no Airflow."""
