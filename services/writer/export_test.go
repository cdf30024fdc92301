package writer

// SetCrash arms the crash-injection hook of cfg: the writer SIGKILLs its
// own process at point of batch number batch. Tests only: production
// builds have no way to set it.
func SetCrash(cfg *Config, point string, batch int) error {
	h, err := newCrashHook(point, batch)
	if err != nil {
		return err
	}
	cfg.crash = h
	return nil
}
