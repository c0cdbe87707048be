"""Records of bulk-imported images, a block per part instead of a hash per image.

An imported part of 49 k rows written as 49 k hashes cost Redis 10 µs a row with AOF on
(every command logged, and copied again by each AOF rewrite) and 273 bytes an image; one
string per part costs it 1.1 µs a row and 93 bytes an image, the rows list included.
Such an image's id carries its row (``<part nonce, 12 hex><row, 12 hex>``), and the block
that holds the row is found in ``{c}:blocks`` (first row → block). A block::

    n (uint32) | offset of each record and of the end (n + 1 uint32, from the block's start)
    | records: id (24 characters) filename NUL metadata JSON NUL labels JSON

(little-endian; metadata and labels '' when there are none). :data:`RECORDS_SCRIPT` reads
ingested images' hashes and imported images' blocks alike, so readers need not know which.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

# (filename, labels, metadata): what an imported row brings besides its embedding
ImportRow = tuple[str, list[str], dict[str, Any]]


def block_key(collection_key: str, first_row: int) -> str:
    return f"{collection_key}:block:{first_row}"


def imported_ids(first_row: int, rows: int) -> list[str]:
    """Fresh ids for rows ``first_row``.. of one part: a random part nonce, then the row."""
    nonce = os.urandom(6).hex()
    return [f"{nonce}{row:012x}" for row in range(first_row, first_row + rows)]


def encode_block(ids: Sequence[str], rows: Sequence[ImportRow]) -> bytes:
    """The block of one part's records (layout: the module's docstring)."""
    records = [
        "".join(
            (
                image_id,
                filename.replace("\0", ""),
                "\0",
                json.dumps(metadata) if metadata else "",
                "\0",
                json.dumps(labels) if labels else "",
            )
        ).encode()
        for image_id, (filename, labels, metadata) in zip(ids, rows, strict=True)
    ]
    header = 4 * (len(records) + 2)
    offsets = accumulate((len(r) for r in records), initial=header)
    return struct.pack(f"<{len(records) + 2}I", len(records), *offsets) + b"".join(records)


def label_counts(rows: Sequence[ImportRow]) -> str:
    """JSON {label: images} of a part, for the import script's label counts."""
    return json.dumps(Counter(label for _, labels, _ in rows for label in labels))


# KEYS: the collection, its parts, rows, labels and blocks. ARGV: part, the images the tenant
# may still add, n, the 'vectors' field to set ('' for none), the first row, the n ids
# (24 characters each, concatenated), the block, the label counts (JSON), then (key, bytes)
# segment appends. Returns {count after, 1} if the part was imported before; {-1} if the
# collection is gone; {-2, room} over the quota; {-3} if rows were added since the caller
# counted them (it holds the lock: never); else {count after, 0}.
IMPORT_SCRIPT = """
local c = KEYS[1]
if redis.call('EXISTS', c) == 0 then return {-1, 0} end
local count = tonumber(redis.call('HGET', c, 'image_count') or '0')
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {count, 1} end
local n = tonumber(ARGV[3])
if n > tonumber(ARGV[2]) then return {-2, tonumber(ARGV[2])} end
if count ~= tonumber(ARGV[5]) then return {-3, 0} end
for from = 1, n, 1000 do
  local ids = {}
  for i = from, math.min(n, from + 999) do
    ids[#ids + 1] = string.sub(ARGV[6], 24 * i - 23, 24 * i)
  end
  redis.call('RPUSH', KEYS[3], unpack(ids))
end
redis.call('SET', c .. ':block:' .. count, ARGV[7])
redis.call('ZADD', KEYS[5], count, count)
for label, images in pairs(cjson.decode(ARGV[8])) do
  redis.call('HINCRBY', KEYS[4], label, images)
end
for at = 9, #ARGV, 2 do redis.call('APPEND', ARGV[at], ARGV[at + 1]) end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({rows = n, first_row = count}))
if ARGV[4] ~= '' then redis.call('HSET', c, 'vectors', ARGV[4]) end
redis.call('HINCRBY', c, 'image_count', n)
redis.call('HINCRBY', c, 'version', 1)
return {count + n, 0}
"""

# KEYS: the collection. ARGV: image ids. Returns, for each, its record as field/value pairs
# (as HGETALL gives them; empty if there is no such image, or it was deleted: ``{c}:deleted``):
# an ingested image's hash, its thumbnail emptied (its presence is what says there is one), or
# an imported image's record, read from its block.
RECORDS_SCRIPT = """
local c = KEYS[1]
local out = {}
for i, id in ipairs(ARGV) do
  local gone = redis.call('SISMEMBER', c .. ':deleted', id) == 1
  local record = gone and {} or redis.call('HGETALL', c .. ':img:' .. id)
  for at = 1, #record, 2 do
    if record[at] == 'thumbnail' then record[at + 1] = '' end
  end
  local row = not gone and #record == 0 and #id == 24 and tonumber(string.sub(id, 13), 16)
  local first = row and redis.call('ZREVRANGEBYSCORE', c .. ':blocks', row, '-inf', 'LIMIT', 0, 1)
  first = first and first[1]
  if first then
    local key = c .. ':block:' .. first
    local within = row - tonumber(first)
    local n = struct.unpack('<I4', redis.call('GETRANGE', key, 0, 3))
    if within < n then
      local bounds = redis.call('GETRANGE', key, 4 + 4 * within, 11 + 4 * within)
      local from, to = struct.unpack('<I4I4', bounds)
      local text = redis.call('GETRANGE', key, from, to - 1)
      if string.sub(text, 1, 24) == id then
        local name_end = string.find(text, '\\0', 25, true)
        local metadata_end = string.find(text, '\\0', name_end + 1, true)
        record = {'id', id, 'filename', string.sub(text, 25, name_end - 1), 'row', row}
        local metadata = string.sub(text, name_end + 1, metadata_end - 1)
        local labels = string.sub(text, metadata_end + 1)
        for field, value in pairs({metadata = metadata, labels = labels}) do
          if value ~= '' then record[#record + 1] = field; record[#record + 1] = value end
        end
      end
    end
  end
  out[i] = record
end
return out
"""


RECORDS_PER_CALL = 500  # a script blocks the server: other tenants' commands wait between calls


def as_record(pairs: Sequence[Any]) -> dict[Any, Any]:
    """A field/value list (a script's reply) as the mapping HGETALL gives."""
    return dict(zip(pairs[::2], pairs[1::2], strict=True))
