package journeyctl

import (
	"context"
	"fmt"
	"io"

	"github.com/klantreis/journey/pkg/ruleset"
)

// RulesStatus is the rules part of `journeyctl status`.
type RulesStatus struct {
	Live       ruleset.Live      `json:"live"`
	Spec       string            `json:"spec"`
	Versions   int               `json:"versions"`
	Projectors []ruleset.Running `json:"projectors"`
}

// rulesStatus reads the pointer, the versions and the projectors'
// reports; nil when they cannot be read (status shows the rest).
func rulesStatus(ctx context.Context, env *Env) *RulesStatus {
	ops, err := env.ops(ctx)
	if err != nil {
		env.Log.Warn("rules status unavailable", "err", err)
		return nil
	}
	live, _, err := ops.Live(ctx)
	if err != nil {
		return nil
	}
	recs, _ := ops.List(ctx)
	running, _ := ops.RunningAll(ctx)
	st := &RulesStatus{Live: live, Versions: 1 + len(recs), Projectors: running}
	if live.Version == ruleset.Base {
		st.Spec = env.baseVersion().Spec
	}
	for _, r := range recs {
		if r.Name == live.Version {
			st.Spec = r.Spec
		}
	}
	if st.Projectors == nil {
		st.Projectors = []ruleset.Running{}
	}
	return st
}

func printRules(w io.Writer, r *RulesStatus) {
	if r == nil {
		return
	}
	prev := ""
	if r.Live.Previous != "" {
		prev = ", previous " + r.Live.Previous
	}
	fmt.Fprintf(w, "\nRULES: live %s (%s)%s; %d versions (journeyctl rederive list)\n", r.Live.Version, r.Spec, prev, r.Versions)
	for _, p := range r.Projectors {
		fmt.Fprintf(w, "  projector %s runs %s", p.Instance, p.Version)
		if p.Error != "" {
			fmt.Fprintf(w, " (%s)", p.Error)
		}
		fmt.Fprintln(w)
	}
}
