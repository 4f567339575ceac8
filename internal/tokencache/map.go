package tokencache

import (
	"sync"
	"sync/atomic"
)

// Key identifies an app token: tenant, scopes (joined by a space) and whether it is a CAE token.
type Key struct {
	Tenant string
	Scopes string
	CAE    bool
}

// MaxKeys bounds a Map: beyond it, the Map starts again empty. An app asks for tokens for a
// handful of tenant and scope combinations; this is a guard, not an LRU.
const MaxKeys = 1024

// Map holds one Slot per Key. Lookups take no lock and allocate nothing (copy-on-write map behind
// an atomic pointer); adding a key copies the map. Use it for few keys (an app's tenants and
// scopes), not for per-user tokens.
type Map struct {
	m  atomic.Pointer[map[Key]*Slot]
	mu sync.Mutex // serializes writers
}

// Lookup returns the Slot for k, or nil.
func (c *Map) Lookup(k Key) *Slot {
	if m := c.m.Load(); m != nil {
		return (*m)[k]
	}
	return nil
}

// Slot returns the Slot for k, adding an empty one if there is none.
func (c *Map) Slot(k Key) *Slot {
	if s := c.Lookup(k); s != nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if s := (*old)[k]; s != nil {
			return s
		}
	}
	next := make(map[Key]*Slot, 1)
	if old != nil && len(*old) < MaxKeys {
		for k, v := range *old {
			next[k] = v
		}
	}
	s := &Slot{}
	next[k] = s
	c.m.Store(&next)
	return s
}

// Len returns the number of keys.
func (c *Map) Len() int {
	if m := c.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// Clear removes every Slot: the next requests fetch new tokens.
func (c *Map) Clear() {
	c.mu.Lock()
	c.m.Store(nil)
	c.mu.Unlock()
}
