package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/klantreis/journey/pkg/dsar"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// exportCustomer serves GET /v1/customers/{id}/export (admin scope): the
// right of access, one JSON document with everything ClickHouse holds on
// the customer (pkg/dsar), streamed as it is read. A read that fails
// before anything was sent is a problem response; once the body is under
// way it ends without "complete": true (and the failure is logged). A customer journey holds
// nothing on is a document with empty sections, not a 404: "nothing" is
// an answer the subject is owed too.
func (s *Server) exportCustomer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := validID("id", id); err != nil {
		return err
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return err
	}
	st, err := s.db()
	if err != nil {
		return err
	}
	wh, ok := st.(dsar.Warehouse)
	if !ok {
		return errNotReady
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="journey-export.json"`)
	counts, err := dsar.Write(r.Context(), w, id, s.now(), dsar.WarehouseSections(wh, id, stream.CustomerKey(id))...)
	var de *dsar.Error
	switch {
	case errors.As(err, &de) && !de.Sent:
		// Nothing sent yet: a problem response (a timeout is a 504).
		w.Header().Del("Content-Disposition")
		return de.Err
	case err != nil:
		s.log.Error("export cut short", "err", err)
		return nil // the body is under way: a problem cannot follow
	}
	s.log.Info("customer exported", "records", counts)
	return nil
}

// ExportResponses reads the live rules version's answers, like the rest
// of versionStore's projection reads: the export shows what the API shows.
func (s versionStore) ExportResponses(ctx context.Context, customerID string, fn func(warehouse.ResponseRow) error) error {
	return s.v.ExportResponses(ctx, customerID, fn)
}
