-- Custom SQL migration file, put your code below! --
-- Wakes idle workers (LISTEN mailsight_queue) the moment a job becomes runnable, on every
-- instance; custom migration because drizzle-kit does not model triggers.
CREATE OR REPLACE FUNCTION llm_processing_queue_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('mailsight_queue', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER llm_processing_queue_notify_insert
  AFTER INSERT ON llm_processing_queue
  FOR EACH ROW WHEN (NEW.state = 'queued')
  EXECUTE FUNCTION llm_processing_queue_notify();
