package privacy

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/schemas"
)

// ReceiptType is the CloudEvents type of an erasure's receipt.
const ReceiptType = "io.klantreis.privacy.erased.v1"

// Receipt is what GET /v1/erasures/{id} serves and the receipt event
// carries: no customer id, only hashes, counts and times.
type Receipt struct {
	ErasureID string         `json:"erasure_id"`
	Phase     string         `json:"phase,omitempty"`
	Hashes    []string       `json:"customer_hashes"`
	Stores    []ReceiptStore `json:"stores"`
	Started   time.Time      `json:"started_at"`
	Completed *time.Time     `json:"completed_at,omitempty"`
	Attempts  int            `json:"attempts"`
}

// ReceiptStore is one store's line of a receipt.
type ReceiptStore struct {
	Store  string `json:"store"`
	Count  uint64 `json:"count"`
	Erased bool   `json:"erased"`
}

// ReceiptOf is the receipt of r (of a running erasure too: Phase says
// how far it is, Completed is nil until it completes).
func ReceiptOf(r *erasure.Record) Receipt {
	out := Receipt{ErasureID: r.ID, Phase: r.Phase, Hashes: r.Hashes, Started: r.Started.UTC(), Attempts: r.Attempts}
	for _, s := range r.Steps {
		out.Stores = append(out.Stores, ReceiptStore{Store: s.Store, Count: s.Count, Erased: s.Erased})
	}
	if !r.Completed.IsZero() {
		c := r.Completed.UTC()
		out.Completed = &c
	}
	return out
}

// receipts publishes receipts to the PRIVACY stream, deduplicated on the
// erasure id (a resumed erasure that publishes again adds nothing).
type receipts struct {
	js     jetstream.JetStream
	source string
}

// ensureReceiptStream creates the stream receipts are kept in.
func ensureReceiptStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: ReceiptStream, Description: "journey erasure receipts (io.klantreis.privacy.erased.v1): hashes and counts, no personal data",
		Subjects: []string{receiptSubject + "*"}, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		Duplicates: 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("privacy: receipt stream: %w", err)
	}
	return nil
}

func (p receipts) PublishReceipt(ctx context.Context, r *erasure.Record) error {
	rc := ReceiptOf(r)
	rc.Phase = "" // the event is only ever published complete
	if rc.Completed == nil {
		c := r.Completed.UTC()
		rc.Completed = &c
	}
	data, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	e := touchpoint.Event{ID: r.ID, Source: p.source, Type: ReceiptType, Time: r.Completed.UTC(),
		DataContentType: "application/json", DataSchema: schemas.BaseURI + "privacy_erased.v1.json", Data: data}
	m := stream.NewMsg(receiptSubject+r.ID, &e)
	_, err = p.js.PublishMsg(ctx, m)
	return err
}
