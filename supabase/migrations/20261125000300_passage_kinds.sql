-- The kind of each passage of a snapshot (heading, paragraph, list_item, table_row, ...), in the
-- order of passage_hashes: the detector reads a passage together with the heading above it.
alter table public.scraped_contents
  add column passage_kinds text[] not null default '{}';
