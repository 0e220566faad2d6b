package redisstream

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// dedupScript adds an entry unless the event id was added to the stream within the
// window, atomically (a script runs alone on the server). It returns the entry id, and
// 1 when the event was a duplicate (the id of its first entry is returned).
//
// KEYS[1] stream, KEYS[2] dedup key; ARGV[1] window in ms, ARGV[2] MAXLEN (0: none),
// ARGV[3] "~" or "=", ARGV[4...] field, value pairs.
var dedupScript = redis.NewScript(`
local prev = redis.call('GET', KEYS[2])
if prev then
  return {prev, 1}
end
local args = {'XADD', KEYS[1]}
if tonumber(ARGV[2]) > 0 then
  args[#args + 1] = 'MAXLEN'
  args[#args + 1] = ARGV[3]
  args[#args + 1] = ARGV[2]
end
args[#args + 1] = '*'
for i = 4, #ARGV do
  args[#args + 1] = ARGV[i]
end
local id = redis.call(unpack(args))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {id, 0}
`)

// dedupKey names the key that remembers an event added to stream. The hash tag keeps it
// in the stream's slot, should the keyspace ever be sharded.
func (s *Sink) dedupKey(stream, eventID string) string {
	return s.cfg.DedupPrefix + "{" + stream + "}:" + eventID
}

// dedupArgs returns the script's ARGV for one entry.
func (s *Sink) dedupArgs(fields []string) []any {
	trim := "~"
	if s.cfg.MaxLenExact {
		trim = "="
	}
	args := make([]any, 0, 3+len(fields))
	args = append(args, strconv.FormatInt(s.cfg.DedupWindow.Milliseconds(), 10), strconv.FormatInt(s.cfg.MaxLen, 10), trim)
	for _, f := range fields {
		args = append(args, f)
	}
	return args
}
