package main

import (
	"sort"
	"sync"
)

// scope is what one request must hold while FerretDB reads, modifies and writes.
//
//   - everything: the whole server (schema changes and requests this proxy cannot read);
//   - a collection with no ids: every document of it (a filter not pinned to `_id`);
//   - a collection with ids: only those documents (filters on `_id` equality or `$in`),
//     which is MongoDB's own document-level locking: updates of different documents run
//     side by side, two updates of one document one after the other.
type scope struct {
	everything bool
	collection string
	ids        []string
}

// collectionLocks is the state of one collection: its documents held by id, or the whole
// collection held by one request.
type collectionLocks struct {
	whole        bool
	wholeWaiting int
	held         map[string]int
	holders      int
}

// lockTable grants scopes. A request takes its whole scope at once (never one piece after
// another), so two requests can never wait for each other. Waiting wider scopes keep
// newcomers out, so a filter without `_id` is not starved by a stream of updates by `_id`.
type lockTable struct {
	// slots bounds the read-modify-write requests at FerretDB at once: its PostgreSQL pool
	// (50 connections) must never be taken whole by requests that each wait for one more
	// (FerretDB 1.24 hangs then, without an error; seen with one update command of many
	// statements). Reads and inserts take no slot.
	slots             chan struct{}
	mu                sync.Mutex
	changed           *sync.Cond
	everythingHeld    bool
	everythingWaiting int
	holders           int
	collections       map[string]*collectionLocks
}

func newLockTable(maxWriters int) *lockTable {
	t := &lockTable{collections: map[string]*collectionLocks{}, slots: make(chan struct{}, maxWriters)}
	t.changed = sync.NewCond(&t.mu)
	return t
}

func (t *lockTable) collection(name string) *collectionLocks {
	c := t.collections[name]
	if c == nil {
		c = &collectionLocks{held: map[string]int{}}
		t.collections[name] = c
	}
	return c
}

// acquire blocks until a slot is free and s is granted, and returns their release.
func (t *lockTable) acquire(s scope) func() {
	t.slots <- struct{}{} // before the mutex: waiting here must not hold up releases
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.everything {
		t.everythingWaiting++
		for t.everythingHeld || t.holders > 0 {
			t.changed.Wait()
		}
		t.everythingWaiting--
		t.everythingHeld = true
		return t.releaser(func() { t.everythingHeld = false })
	}
	ids := uniqueSorted(s.ids)
	c := t.collection(s.collection)
	if len(ids) == 0 {
		c.wholeWaiting++
		for t.everythingHeld || t.everythingWaiting > 0 || c.whole || c.holders > 0 {
			t.changed.Wait()
		}
		c.wholeWaiting--
		c.whole = true
		c.holders++
		t.holders++
		return t.releaser(func() {
			c.whole = false
			t.releaseCollection(s.collection, c)
		})
	}
	for t.everythingHeld || t.everythingWaiting > 0 || c.whole || c.wholeWaiting > 0 || c.anyHeld(ids) {
		t.changed.Wait()
		c = t.collection(s.collection) // the last holder may have dropped the old entry
	}
	for _, id := range ids {
		c.held[id]++
	}
	c.holders++
	t.holders++
	return t.releaser(func() {
		for _, id := range ids {
			if c.held[id]--; c.held[id] == 0 {
				delete(c.held, id)
			}
		}
		t.releaseCollection(s.collection, c)
	})
}

func (t *lockTable) releaseCollection(name string, c *collectionLocks) {
	c.holders--
	t.holders--
	if c.holders == 0 && c.wholeWaiting == 0 {
		delete(t.collections, name)
	}
}

// releaser wraps undo (run under the table's mutex) and wakes every waiter once it ran.
func (t *lockTable) releaser(undo func()) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			undo()
			t.mu.Unlock()
			t.changed.Broadcast()
			<-t.slots
		})
	}
}

func (c *collectionLocks) anyHeld(ids []string) bool {
	for _, id := range ids {
		if c.held[id] > 0 {
			return true
		}
	}
	return false
}

func uniqueSorted(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	unique := sorted[:1]
	for _, id := range sorted[1:] {
		if id != unique[len(unique)-1] {
			unique = append(unique, id)
		}
	}
	return unique
}
