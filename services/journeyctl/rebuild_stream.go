package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// readRange reads the TOUCHPOINTS messages with sequences from..to through
// an ordered consumer (no server state left behind; a broker hiccup is
// resumed by the client) and hands them to fn in batches of up to n.
// Messages the retention removed are simply absent.
func readRange(ctx context.Context, js jetstream.JetStream, from, to uint64, n int, fn func([]jetstream.Msg) error) error {
	if from > to {
		return nil
	}
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return fmt.Errorf("journeyctl: stream %s: %w", stream.TouchpointStream, err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		return fmt.Errorf("journeyctl: read %s: %w", stream.TouchpointStream, err)
	}
	var buf []jetstream.Msg
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := fn(buf)
		buf = nil
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := c.Fetch(n, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("journeyctl: read %s: %w", stream.TouchpointStream, err)
		}
		got, done := 0, false
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > to {
				done = true
				break
			}
			buf = append(buf, m)
			if md.Sequence.Stream == to || md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("journeyctl: read %s: %w", stream.TouchpointStream, err)
		}
		if err := flush(); err != nil {
			return err
		}
		if done || got == 0 {
			return nil
		}
	}
}

// decodedRow is one message turned into an events row the way the writer
// does it (services/writer decode): CloudEvent decoding, schema
// validation at the time the stream stored it, the subject check, the
// column mapping of warehouse.NewEventRow and the server's range check.
// invalid is set for what the writer would dead-letter.
type decodedRow struct {
	row     warehouse.EventRow
	invalid bool
}

func decodeRow(db *warehouse.DB, m jetstream.Msg) (decodedRow, uint64, error) {
	md, err := m.Metadata()
	if err != nil {
		return decodedRow{}, 0, fmt.Errorf("journeyctl: message without metadata: %w", err)
	}
	seq := md.Sequence.Stream
	e, err := stream.DecodeMsg(m.Headers(), m.Data())
	if err != nil {
		return decodedRow{invalid: true}, seq, nil
	}
	pl, err := touchpoint.Validate(&e, md.Timestamp)
	if err == nil {
		err = stream.CheckStored(m.Subject(), &e)
	}
	if err != nil {
		return decodedRow{invalid: true}, seq, nil
	}
	// ingested_at is when the stream accepted the event: the writer's
	// clock at that time is gone, the stream's stamp is the nearest truth.
	r := warehouse.NewEventRow(seq, &e, &pl, md.Timestamp)
	if err := db.CheckEventRow(&r); err != nil {
		return decodedRow{invalid: true}, seq, nil
	}
	return decodedRow{row: r}, seq, nil
}

// judgeRows keeps the rows the writer would store given the stored
// versions (updated in place, so a later copy in the batch is judged
// against an earlier one): new events and higher revisions. It returns
// the kept rows, and how many were duplicates or stale and how many
// conflicts (dead-lettered by the writer).
func judgeRows(rows []warehouse.EventRow, stored map[warehouse.Identity]touchpoint.Version) (keep []warehouse.EventRow, skipped, conflicts uint64) {
	for _, r := range rows {
		k := warehouse.Identity{Source: r.Source, ID: r.ID}
		in := touchpoint.Version{Revision: r.Revision, Content: r.ContentHash}
		have, ok := stored[k]
		switch touchpoint.Judge(have, ok, in) {
		case touchpoint.Store:
			stored[k] = in
			keep = append(keep, r)
		case touchpoint.Duplicate, touchpoint.Stale:
			skipped++
		case touchpoint.Conflict:
			conflicts++
		}
	}
	return keep, skipped, conflicts
}

// writerFloor is the stream sequence up to which the live writer has
// acknowledged every message, i.e. stored it in events (or dead-lettered
// or skipped it): its durable consumer's ack floor. Without that
// consumer no writer runs, and the floor is the stream's last sequence.
func writerFloor(ctx context.Context, js jetstream.JetStream, consumer string) (uint64, error) {
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return 0, fmt.Errorf("journeyctl: stream %s: %w", stream.TouchpointStream, err)
	}
	c, err := s.Consumer(ctx, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("journeyctl: stream %s: %w", stream.TouchpointStream, err)
		}
		return info.State.LastSeq, nil
	}
	if err != nil {
		return 0, fmt.Errorf("journeyctl: consumer %s: %w", consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("journeyctl: consumer %s: %w", consumer, err)
	}
	return info.AckFloor.Stream, nil
}

// streamSums judges the stream's messages 1..upto the way the writer
// does and sums up the rows that judgement stores, per month: what a
// table rebuilt from the stream must hold.
func streamSums(ctx context.Context, js jetstream.JetStream, db *warehouse.DB, upto uint64, prog Progress) ([]warehouse.PartitionSum, error) {
	stored := map[warehouse.Identity]touchpoint.Version{}
	months := map[uint32]*warehouse.PartitionSum{}
	err := readRange(ctx, js, 1, upto, 5000, func(msgs []jetstream.Msg) error {
		var rows []warehouse.EventRow
		for _, m := range msgs {
			d, _, err := decodeRow(db, m)
			if err != nil {
				return err
			}
			if !d.invalid {
				rows = append(rows, d.row)
			}
		}
		keep, _, _ := judgeRows(rows, stored)
		for _, r := range keep {
			mo := uint32(r.Time.Year()*100 + int(r.Time.Month()))
			p := months[mo]
			if p == nil {
				p = &warehouse.PartitionSum{Month: mo}
				months[mo] = p
			}
			fp := warehouse.Fingerprint(r.IDHash, r.Revision)
			p.Rows++
			p.Distinct++
			p.Sum += fp
			p.Xor ^= fp
		}
		prog.Add(len(msgs))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedSums(months), nil
}
