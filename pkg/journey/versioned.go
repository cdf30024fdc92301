package journey

import "fmt"

// NewVersioned returns a rulebook for r whose transitions carry version
// instead of [Rules.Version]: a rule set built on these stage rules (the
// account rules of pkg/account) names its own version in every
// transition it explains. version must not be empty.
func NewVersioned(r Rules, version string) (*Rulebook, error) {
	if version == "" {
		return nil, fmt.Errorf("%w: empty rules version", ErrRules)
	}
	b, err := New(r)
	if err != nil {
		return nil, err
	}
	b.version = version
	return b, nil
}
