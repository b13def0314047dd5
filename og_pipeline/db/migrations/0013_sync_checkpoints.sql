-- How far each walk of a long sync got (issue 11): a year-long first sync that dies after six
-- months resumes each object type's walk where it was, instead of walking the year again. Keyed
-- by the sync's window, so only a rerun of the same range resumes; removed when the sync ends.
CREATE TABLE og.sync_checkpoints (
    range_start  timestamptz NOT NULL,
    range_end    timestamptz NOT NULL,
    resource     text NOT NULL,
    done_until   timestamptz NOT NULL,  -- every record updated before this is committed
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (range_start, range_end, resource)
);
