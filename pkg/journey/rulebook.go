package journey

// Rulebook applies one set of [Rules] (see [Rulebook.Apply] in apply.go).
// It is immutable and safe for concurrent use.
type Rulebook struct {
	rules   Rules
	version string
}

// NewRulebook returns a rulebook for r, or an error wrapping [ErrRules].
func NewRulebook(r Rules) (*Rulebook, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &Rulebook{rules: r, version: r.Version()}, nil
}

// New is [NewRulebook].
//
// Deprecated: use NewRulebook, which says what it builds; New stays for
// one release.
func New(r Rules) (*Rulebook, error) { return NewRulebook(r) }

// Rules returns the thresholds in use.
func (b *Rulebook) Rules() Rules { return b.rules }

// Version is the rules version written into every transition.
func (b *Rulebook) Version() string { return b.version }
