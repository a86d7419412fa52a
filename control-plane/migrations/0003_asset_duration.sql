-- How long an asset plays, in milliseconds, read from its MPD when it
-- becomes ready (0: not known — still transcoding, or packaged elsewhere).
ALTER TABLE assets ADD COLUMN duration_ms BIGINT NOT NULL DEFAULT 0;
