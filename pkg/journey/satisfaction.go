package journey

import (
	"time"
)

// Category is the NPS category of a survey score.
type Category string

// NPS categories; CategoryNone means no answer yet.
const (
	CategoryNone      Category = ""
	CategoryPromoter  Category = "promoter"
	CategoryPassive   Category = "passive"
	CategoryDetractor Category = "detractor"
)

// CategoryOf maps a 0..10 score: 9-10 promoter, 7-8 passive, 0-6
// detractor. Scores outside 0..10 (rejected by the contract) have no
// category.
func CategoryOf(score int) Category {
	switch {
	case score >= 9 && score <= 10:
		return CategoryPromoter
	case score >= 7 && score <= 8:
		return CategoryPassive
	case score >= 0 && score <= 6:
		return CategoryDetractor
	}
	return CategoryNone
}

// Satisfaction is a customer's satisfaction as the rules see it. It is
// comparable, so a change is a != between two values.
type Satisfaction struct {
	// Score of the latest answer (by event time, then stream sequence); -1
	// when the customer never answered.
	Score    int
	Category Category
	Comment  string
	// Responses counts distinct answers (by event source and id).
	Responses int
	// OpenComplaints counts complaint_ids opened and not resolved.
	OpenComplaints int
	// LastComplaintAt is the latest time a complaint was opened.
	LastComplaintAt time.Time
	// AtRisk: the latest answer is a detractor, or a complaint is open.
	AtRisk bool
}

// AtRiskReasons lists why a customer is at risk: "detractor",
// "open_complaint"; empty when not at risk.
func (s Satisfaction) AtRiskReasons() []string {
	var r []string
	if s.Category == CategoryDetractor {
		r = append(r, "detractor")
	}
	if s.OpenComplaints > 0 {
		r = append(r, "open_complaint")
	}
	return r
}

// Satisfaction derives the customer's satisfaction from the facts.
func (s *State) Satisfaction() Satisfaction {
	out := Satisfaction{Score: -1, Responses: len(s.Responses)}
	if s.Survey != nil {
		out.Score = s.Survey.Score
		out.Category = CategoryOf(s.Survey.Score)
		out.Comment = s.Survey.Comment
	}
	for _, c := range s.Complaints {
		if c.Opened != nil {
			if c.Resolved == nil {
				out.OpenComplaints++
			}
			if c.Opened.At.After(out.LastComplaintAt) {
				out.LastComplaintAt = c.Opened.At
			}
		}
	}
	out.AtRisk = out.Category == CategoryDetractor || out.OpenComplaints > 0
	return out
}

// Response is one survey answer for the aggregate NPS.
type Response struct {
	CustomerID string
	// ContactID, when given, makes customer+contact the respondent (several
	// people of one B2B account answer for themselves).
	ContactID string
	Time      time.Time
	// Seq breaks ties between answers with the same Time (stream sequence).
	Seq   uint64
	Score int
}

// NPSResult is the aggregate NPS of a set of responses.
type NPSResult struct {
	// Value is 100 x (promoters - detractors) / respondents, rounded half
	// away from zero; meaningful only when OK.
	Value                           int
	Respondents                     int
	Promoters, Passives, Detractors int
	// OK is false when there are no respondents: the NPS is then undefined,
	// not 0.
	OK bool
}

type respondent struct{ customer, contact string }

// NPS aggregates responses (the caller selects the period): each
// respondent counts once, with their latest response (by Time, then Seq).
func NPS(responses []Response) NPSResult {
	latest := make(map[respondent]int, len(responses))
	for i := range responses {
		r := &responses[i]
		k := respondent{r.CustomerID, r.ContactID}
		j, ok := latest[k]
		if !ok {
			latest[k] = i
			continue
		}
		cur := &responses[j]
		if c := r.Time.Compare(cur.Time); c > 0 || c == 0 && r.Seq > cur.Seq {
			latest[k] = i
		}
	}
	var out NPSResult
	for _, i := range latest {
		switch CategoryOf(responses[i].Score) {
		case CategoryPromoter:
			out.Promoters++
		case CategoryPassive:
			out.Passives++
		case CategoryDetractor:
			out.Detractors++
		default:
			continue // an out-of-range score is no answer
		}
		out.Respondents++
	}
	return NPSFromCounts(out.Promoters, out.Passives, out.Detractors)
}

// NPSFromCounts computes the NPS of respondent counts per category (as a
// query that already kept each respondent's latest answer produces them).
func NPSFromCounts(promoters, passives, detractors int) NPSResult {
	out := NPSResult{Promoters: promoters, Passives: passives, Detractors: detractors}
	out.Respondents = promoters + passives + detractors
	if out.Respondents <= 0 {
		return out
	}
	out.OK = true
	out.Value = roundHalfAwayFromZero(100*(promoters-detractors), out.Respondents)
	return out
}

// roundHalfAwayFromZero divides num by a positive den in integers, so 12.5
// is 13 and -12.5 is -13 without float error.
func roundHalfAwayFromZero(num, den int) int {
	q, r := num/den, num%den
	if r < 0 {
		r = -r
	}
	if 2*r >= den {
		if num < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}
