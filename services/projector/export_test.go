package projector

import "fmt"

// SetCheckpointCrash arms the checkpoint crash hook of cfg: the projector
// SIGKILLs its own process after the state writes of its n-th checkpoint
// (counted over the process's partitions) and before that checkpoint's
// acks. Tests only: production builds have no way to set it.
func SetCheckpointCrash(cfg *Config, n int) error {
	if n < 1 {
		return fmt.Errorf("%w: crash checkpoint must be 1 or more, got %d", ErrConfig, n)
	}
	cfg.Projector.ckptCrash = &crashAfter{n: int64(n)}
	return nil
}
