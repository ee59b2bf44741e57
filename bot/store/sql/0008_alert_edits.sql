-- When the bot last edited an alert incident's summary: in a storm each summary is edited
-- at most every few seconds (Slack allows about 50 chat.update calls a minute).
ALTER TABLE incidents ADD COLUMN summary_edited_at timestamptz;
