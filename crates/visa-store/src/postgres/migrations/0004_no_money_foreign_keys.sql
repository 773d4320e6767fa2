-- The money path's rows carry no foreign keys: each one fired a trigger and a query per row
-- written (seven a paid call, a quarter of the database's time per call). The rows they
-- named are the ones the writing transaction holds locked (its account, its keys' counters,
-- its node's live lease, the execution it inserts or ends), none of those rows is ever
-- deleted, and `ledger verify` lists any reference to a row that does not exist.
ALTER TABLE executions DROP CONSTRAINT executions_account_id_fkey,
    DROP CONSTRAINT executions_key_id_fkey, DROP CONSTRAINT executions_node_id_fkey;
ALTER TABLE ledger DROP CONSTRAINT ledger_account_id_fkey;
ALTER TABLE idempotency_records DROP CONSTRAINT idempotency_records_execution_id_fkey;
ALTER TABLE execution_responses DROP CONSTRAINT execution_responses_execution_id_fkey;
