package suppression

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// mention matches an id where a JSON record can hold one: a whole JSON
// string, after "=" (--customer=ID) or in a comma-separated list
// (--customer a,b).
func mention(id string) *regexp.Regexp {
	esc, _ := json.Marshal(id)
	body := regexp.QuoteMeta(string(esc[1 : len(esc)-1]))
	return regexp.MustCompile(`(["=,])` + body + `([",])`)
}

// Redact replaces every mention of the ids in a JSON document with
// "erased:" and the first 8 hex digits of the id's Hash, for records that
// stay after an erasure (an ops job, a replay's selection); an id that
// merely contains another is left alone.
func Redact(raw []byte, ids []string) []byte {
	for _, id := range ids {
		re := mention(id)
		repl := []byte("${1}erased:" + Hash(id)[:8] + "${2}")
		// Again until stable: adjacent mentions ("c1,c1") share a delimiter.
		for next := re.ReplaceAll(raw, repl); !bytes.Equal(next, raw); next = re.ReplaceAll(raw, repl) {
			raw = next
		}
	}
	return raw
}
