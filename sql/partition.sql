-- Partitioning: what a distributed engine needs before it splits the inputs by company.

-- name: partition_keys
-- The integer company id of each raw row, cast exactly as validation casts it, so every row
-- of a company hashes to the same partition (a row whose id does not parse gets NULL).
select try_cast(id as bigint) as _key from raw_batch
