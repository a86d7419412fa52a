-- Assets deleted recently, so that engines that keep their own copy of the
-- files (a split deployment) remove them on their next poll. A row goes
-- when the id is used again or after a week.
CREATE TABLE deleted_assets (
    id         TEXT PRIMARY KEY,
    deleted_at BIGINT NOT NULL
);
