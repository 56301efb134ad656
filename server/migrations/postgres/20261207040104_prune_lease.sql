-- Retention (issue 17): the instance whose pruner holds this row prunes the shared database; the
-- others skip until it lapses (a crashed holder's lease runs out).
CREATE TABLE prune_lease (
    name     TEXT   PRIMARY KEY NOT NULL,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL
);
