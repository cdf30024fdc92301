package warehouse

import (
	"encoding/binary"
	"io"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The driver's String column (ch-go's ColStr) grows its byte buffer and
// its position slice by append, one value at a time: a 20 000-row batch
// reallocated and copied each String column ~30 times, 69 MB allocated per
// batch for ~8 MB of data (BenchmarkInsertEvents). The column has no
// method to reserve capacity, but decoding n values sizes both slices in
// one step and Reset keeps the capacity ("preserving capacity for
// efficiency", ch-go). So reserveStrings decodes n-1 empty strings and one
// string of the column's total length from a generated stream of zeros,
// then resets the column. Should a driver version behave differently this
// only costs time: the column is checked empty before the real values go
// in, else it is left alone.

// reserver reserves String column capacity within one batch.
type reserver struct {
	src zeroStream
	r   *proto.Reader
}

// strings reserves room for vals in col if col is a plain String column
// that is still empty.
func (rs *reserver) strings(col column.Interface, vals []string) {
	if len(vals) < 64 || col.Type() != "String" || col.Rows() != 0 {
		return
	}
	total := 0
	for _, v := range vals {
		total += len(v)
	}
	if rs.r == nil {
		rs.r = proto.NewReader(&rs.src)
	}
	rs.src.add(len(vals), total)
	if err := col.Decode(rs.r, len(vals)); err != nil {
		// The stream is out of step now; stop reserving in this batch.
		rs.r = nil
		rs.src = zeroStream{}
	}
	col.Reset()
}

// zeroStream generates native-format String columns: per queued column,
// n-1 zero lengths, then the varint length of one string of zeros.
type zeroStream struct {
	queue []segment
}

type segment struct {
	empties int    // zero-length strings still to emit
	head    []byte // varint length of the last string, still to emit
	body    int    // zero bytes of the last string still to emit
}

func (z *zeroStream) add(n, total int) {
	var b [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(b[:], uint64(total))
	z.queue = append(z.queue, segment{empties: n - 1, head: append([]byte(nil), b[:k]...), body: total})
}

func (z *zeroStream) Read(p []byte) (int, error) {
	w := 0
	for w < len(p) && len(z.queue) > 0 {
		s := &z.queue[0]
		switch {
		case s.empties > 0:
			k := min(s.empties, len(p)-w)
			clear(p[w : w+k])
			s.empties -= k
			w += k
		case len(s.head) > 0:
			k := copy(p[w:], s.head)
			s.head = s.head[k:]
			w += k
		case s.body > 0:
			k := min(s.body, len(p)-w)
			clear(p[w : w+k])
			s.body -= k
			w += k
		default:
			z.queue = z.queue[1:]
		}
	}
	if w == 0 {
		return 0, io.EOF
	}
	return w, nil
}
