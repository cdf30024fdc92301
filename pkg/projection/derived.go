package projection

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
)

type stageChanged struct {
	From          journey.Stage  `json:"from"`
	To            journey.Stage  `json:"to"`
	At            time.Time      `json:"at"`
	Reason        journey.Reason `json:"reason"`
	CauseEventIDs []string       `json:"cause_event_ids"`
	RulesVersion  string         `json:"rules_version"`
}

type satisfactionChanged struct {
	Score          *int              `json:"score"`
	Category       *journey.Category `json:"category"`
	Comment        string            `json:"comment,omitempty"`
	Responses      int               `json:"responses"`
	OpenComplaints int               `json:"open_complaints"`
	AtRisk         bool              `json:"at_risk"`
	CauseEventIDs  []string          `json:"cause_event_ids"`
	RulesVersion   string            `json:"rules_version"`
}

type atRisk struct {
	Reasons        []string          `json:"reasons"`
	Category       *journey.Category `json:"category"`
	OpenComplaints int               `json:"open_complaints"`
	CauseEventIDs  []string          `json:"cause_event_ids"`
	RulesVersion   string            `json:"rules_version"`
}

// appendDerived adds the derived events of one update: stage_changed when
// the current stage changed, satisfaction_changed when the satisfaction
// did, at_risk when it became true (or the customer at risk consented to
// marketing) and marketing consent is given. Ids are hashes of what the event says
// and where in the customer's history it happened, so a replay produces the
// same ids and the stream's duplicate window drops the repeats.
func (p *Projector) appendDerived(out []touchpoint.Event, u *Update) []touchpoint.Event {
	st := u.Record.State
	ch := &u.Change
	version := p.o.Rules.Version()
	if ch.StageChanged() && len(st.History) > 0 {
		last := st.History[len(st.History)-1]
		d := stageChanged{From: ch.From, To: ch.To, At: last.At.UTC(), Reason: last.Reason, CauseEventIDs: last.Causes, RulesVersion: version}
		id := hashID(string(touchpoint.KindStageChanged), u.CustomerID, strconv.Itoa(len(st.History)-1),
			string(d.From), string(d.To), strconv.FormatInt(d.At.UnixNano(), 10), string(d.Reason))
		out = append(out, p.event(touchpoint.KindStageChanged, id, u.CustomerID, d.At, d))
	}
	// Marketing automation acts on at_risk: it goes out only with the
	// customer's marketing consent as it stands after this update (a
	// withdrawal in the same batch holds at once), when the customer
	// became at risk, or is at risk and has just consented.
	sat := ch.SatisfactionAfter
	reportRisk := sat.AtRisk && st.MayEmit(touchpoint.KindAtRisk) && (ch.BecameAtRisk() || ch.MarketingGranted())
	if !ch.SatisfactionChanged() && !reportRisk {
		return out
	}
	var causes []string
	var lastCause *journey.Event
	for i := range u.Msgs {
		e := &u.Msgs[i].Event
		if e.Kind == touchpoint.KindSurvey || e.Kind == touchpoint.KindComplaint {
			causes = append(causes, e.ID)
			if lastCause == nil || lastCause.Time.Before(e.Time) || lastCause.Time.Equal(e.Time) && lastCause.Seq < e.Seq {
				lastCause = e
			}
		}
	}
	if causes == nil {
		causes = []string{}
	}
	at := u.At
	lastKey := ""
	if lastCause != nil {
		at, lastKey = lastCause.Time, lastCause.Source+"\x00"+lastCause.ID
	}
	var score *int
	var cat *journey.Category
	if sat.Score >= 0 {
		s, c := sat.Score, sat.Category
		score, cat = &s, &c
	}
	snapshot := strconv.Itoa(sat.Score) + "|" + sat.Comment + "|" + strconv.Itoa(sat.Responses) + "|" +
		strconv.Itoa(sat.OpenComplaints) + "|" + strconv.FormatBool(sat.AtRisk)
	sd := satisfactionChanged{Score: score, Category: cat, Comment: sat.Comment, Responses: sat.Responses,
		OpenComplaints: sat.OpenComplaints, AtRisk: sat.AtRisk, CauseEventIDs: causes, RulesVersion: version}
	if ch.SatisfactionChanged() {
		out = append(out, p.event(touchpoint.KindSatisfactionChanged,
			hashID(string(touchpoint.KindSatisfactionChanged), u.CustomerID, snapshot, lastKey), u.CustomerID, at, sd))
	}
	if reportRisk {
		ad := atRisk{Reasons: sat.AtRiskReasons(), Category: cat, OpenComplaints: sat.OpenComplaints, CauseEventIDs: causes, RulesVersion: version}
		out = append(out, p.event(touchpoint.KindAtRisk,
			hashID(string(touchpoint.KindAtRisk), u.CustomerID, snapshot, lastKey), u.CustomerID, at, ad))
	}
	return out
}

func (p *Projector) event(k touchpoint.Kind, id, customerID string, at time.Time, data any) touchpoint.Event {
	raw, _ := json.Marshal(data) // plain structs of strings, ints and times: cannot fail
	t := touchpoint.TypeOf(k)
	return touchpoint.Event{
		ID:              id,
		Source:          p.o.Source,
		Type:            t,
		Subject:         customerID,
		Time:            at.UTC(),
		DataContentType: touchpoint.ContentTypeJSON,
		DataSchema:      touchpoint.SchemaURI(t),
		Data:            raw,
	}
}

func hashID(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
