package projection

// Reset drops every cached record, so that the next batch reads its
// customers from the store again. A checkpointing caller (one whose Store
// holds writes in memory until a checkpoint) calls it when a checkpoint's
// compare-and-set was lost: what the cache holds is then no longer what
// the store will hold. The sweep schedule is kept; a stale entry is
// corrected by the sweep that finds it.
func (p *Projector) Reset() {
	p.cache = make(map[string]cached)
	p.fifo = nil
}

// Revised records that the store now holds revision rev of a customer's
// record: a checkpoint wrote it after the batch that changed it was
// committed to the caller's buffer. A customer no longer cached is
// ignored: its next read asks the store.
func (p *Projector) Revised(customerID string, rev uint64) {
	if c, ok := p.cache[customerID]; ok {
		c.rev = rev
		p.cache[customerID] = c
	}
}
