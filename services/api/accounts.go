package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/warehouse"
)

// AccountStore is what the account endpoints read; *warehouse.DB is one.
// It is apart from [Store] so that a store without accounts still serves
// the rest: the account endpoints then answer 503.
type AccountStore interface {
	Account(ctx context.Context, id string) (warehouse.AccountState, error)
	Accounts(ctx context.Context, f warehouse.AccountFilter) ([]warehouse.AccountState, error)
}

var errNoAccounts = errors.New("api: the store serves no accounts")

// AccountNPSJSON is the NPS over an account's current contacts, each with
// their latest answer for the account; nps is null without respondents.
type AccountNPSJSON struct {
	NPS         *int   `json:"nps"`
	Respondents uint32 `json:"respondents"`
	Promoters   uint32 `json:"promoters"`
	Passives    uint32 `json:"passives"`
	Detractors  uint32 `json:"detractors"`
}

// MemberJSON is a current contact of an account.
type MemberJSON struct {
	CustomerID     string    `json:"customer_id"`
	ContactID      string    `json:"contact_id"`
	Role           string    `json:"role"`
	LastTouch      time.Time `json:"last_touch"`
	Engaged        bool      `json:"engaged"`
	Score          *int      `json:"score"`
	Category       string    `json:"category,omitempty"`
	OpenComplaints int       `json:"open_complaints"`
}

// AccountJSON is an account's projected state. Members and Explain are
// given by GET /v1/accounts/{id} only.
type AccountJSON struct {
	AccountID      string         `json:"account_id"`
	Stage          string         `json:"stage"`
	StageSince     time.Time      `json:"stage_since"`
	AtRisk         bool           `json:"at_risk"`
	AtRiskReasons  []string       `json:"at_risk_reasons"`
	Gap            bool           `json:"gap"`
	OpenQuotes     []string       `json:"open_quotes"`
	Coverage       []string       `json:"coverage"`
	Uncovered      []string       `json:"uncovered"`
	MemberCount    uint32         `json:"member_count"`
	FormerMembers  uint32         `json:"former_members"`
	NPS            AccountNPSJSON `json:"nps"`
	OpenComplaints uint32         `json:"open_complaints"`
	LastTouch      time.Time      `json:"last_touch"`
	UpdatedAt      time.Time      `json:"updated_at"`
	RulesVersion   string         `json:"rules_version"`
	Members        []MemberJSON   `json:"members,omitempty"`
	Explain        *ExplainJSON   `json:"explain,omitempty"`
}

// AccountPage is one page of accounts.
type AccountPage struct {
	Items      []AccountJSON `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func accountJSON(a warehouse.AccountState) AccountJSON {
	out := AccountJSON{AccountID: a.AccountID, Stage: a.Stage, StageSince: a.StageSince.UTC(), AtRisk: a.AtRisk,
		AtRiskReasons: nonNil(a.AtRiskReasons), Gap: a.Gap, OpenQuotes: nonNil(a.OpenQuotes), Coverage: nonNil(a.Coverage),
		Uncovered: nonNil(a.Uncovered), MemberCount: a.Members, FormerMembers: a.FormerMembers, OpenComplaints: a.OpenComplaints,
		LastTouch: a.LastTouch.UTC(), UpdatedAt: a.UpdatedAt.UTC(), RulesVersion: a.RulesVersion,
		NPS: AccountNPSJSON{Respondents: a.Respondents, Promoters: a.Promoters, Passives: a.Passives, Detractors: a.Detractors}}
	if a.NPS != nil {
		n := int(*a.NPS)
		out.NPS.NPS = &n
	}
	return out
}

func (s *Server) accountStore() (AccountStore, error) {
	st, err := s.db()
	if err != nil {
		return nil, err
	}
	as, ok := st.(AccountStore)
	if !ok {
		return nil, errNoAccounts
	}
	return as, nil
}

// account reads one account with its members and explanation.
func (s *Server) account(r *http.Request, id string) (AccountJSON, error) {
	as, err := s.accountStore()
	if err != nil {
		return AccountJSON{}, err
	}
	a, err := as.Account(r.Context(), id)
	if err != nil {
		return AccountJSON{}, err
	}
	var v account.View
	if err := json.Unmarshal([]byte(a.View), &v); err != nil {
		return AccountJSON{}, fmt.Errorf("api: account %q: stored view: %w", id, err)
	}
	out := accountJSON(a)
	out.Members = make([]MemberJSON, 0, len(v.Members))
	for _, m := range v.Members {
		mj := MemberJSON{CustomerID: m.CustomerID, ContactID: m.ContactID, Role: m.Role, LastTouch: m.LastTouch.UTC(),
			Engaged: m.Engaged, Category: string(m.Category), OpenComplaints: m.OpenComplaints}
		if m.Score >= 0 {
			sc := m.Score
			mj.Score = &sc
		}
		out.Members = append(out.Members, mj)
	}
	ex := &ExplainJSON{Stage: a.Stage, RulesVersion: a.RulesVersion, Transitions: make([]TransitionJSON, 0, len(v.History))}
	for _, t := range v.History {
		causes := t.Causes
		if causes == nil {
			causes = []string{}
		}
		ex.Transitions = append(ex.Transitions, TransitionJSON{From: string(t.From), To: string(t.To), At: t.At.UTC(),
			Reason: string(t.Reason), CauseEventIDs: causes, RulesVersion: t.RulesVersion})
	}
	out.Explain = ex
	return out, nil
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := validID("id", id); err != nil {
		return err
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return err
	}
	a, err := s.account(r, id)
	if err != nil {
		return err
	}
	return writeJSON(w, a)
}

func (s *Server) accounts(r *http.Request, q map[string][]string) (AccountPage, error) {
	if err := checkParams(q, "stage", "at_risk", "gap", "limit", "cursor"); err != nil {
		return AccountPage{}, err
	}
	var f warehouse.AccountFilter
	if v := q["stage"]; len(v) > 0 {
		f.Stage = v[0]
	}
	if f.Stage != "" && !oneOf(f.Stage, Stages) {
		return AccountPage{}, badParam("stage", "must be one of prospect, new_customer, loyal_customer, ex_customer")
	}
	var err error
	if f.AtRisk, err = parseBool(q, "at_risk"); err != nil {
		return AccountPage{}, err
	}
	if f.Gap, err = parseBool(q, "gap"); err != nil {
		return AccountPage{}, err
	}
	if f.Limit, err = parseLimit(q, s.set.DefaultPageSize, s.set.MaxPageSize); err != nil {
		return AccountPage{}, err
	}
	if v := q["cursor"]; len(v) > 0 && v[0] != "" {
		parts, err := decodeCursor(v[0], 1)
		if err != nil {
			return AccountPage{}, err
		}
		f.After = parts[0]
	}
	as, err := s.accountStore()
	if err != nil {
		return AccountPage{}, err
	}
	want := f.Limit
	f.Limit++
	list, err := as.Accounts(r.Context(), f)
	if err != nil {
		return AccountPage{}, err
	}
	page := AccountPage{Items: make([]AccountJSON, 0, len(list))}
	if len(list) > want {
		list = list[:want]
		c := encodeCursor(list[want-1].AccountID)
		page.NextCursor = &c
	}
	for _, a := range list {
		page.Items = append(page.Items, accountJSON(a))
	}
	return page, nil
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	p, err := s.accounts(r, r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, p)
}

// notFoundDetail names what a 404 did not find.
func notFoundDetail(path string) string {
	if strings.HasPrefix(path, "/v1/accounts/") || strings.HasPrefix(path, "/accounts/") {
		return "no account with this id"
	}
	return "no customer with this id"
}
