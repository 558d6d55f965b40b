package main

import (
	"encoding/binary"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// granted reports whether acquire(s) returns within a short wait (and then releases it).
func granted(t *testing.T, table *lockTable, s scope) bool {
	t.Helper()
	release := make(chan func(), 1)
	go func() { release <- table.acquire(s) }()
	select {
	case undo := <-release:
		undo()
		return true
	case <-time.After(100 * time.Millisecond):
		go func() { (<-release)() }() // let it finish once the holder is gone
		return false
	}
}

func TestDifferentDocumentsAreLockedSideBySide(t *testing.T) {
	table := newLockTable(16)
	release := table.acquire(scope{collection: "db.threads", ids: []string{"a", "b"}})
	defer release()
	if !granted(t, table, scope{collection: "db.threads", ids: []string{"c"}}) {
		t.Fatal("an update of another document waited")
	}
	if !granted(t, table, scope{collection: "db.messages", ids: []string{"a"}}) {
		t.Fatal("the same id in another collection waited")
	}
	if granted(t, table, scope{collection: "db.threads", ids: []string{"c", "b"}}) {
		t.Fatal("a second update of a held document did not wait")
	}
	if granted(t, table, scope{collection: "db.threads"}) {
		t.Fatal("a filter without _id ran beside an update of one of its documents")
	}
	if granted(t, table, scope{everything: true}) {
		t.Fatal("a schema change ran beside an update")
	}
}

func TestAWaitingWholeCollectionKeepsNewcomersOut(t *testing.T) {
	table := newLockTable(16)
	release := table.acquire(scope{collection: "db.threads", ids: []string{"a"}})
	whole := make(chan func(), 1)
	go func() { whole <- table.acquire(scope{collection: "db.threads"}) }()
	time.Sleep(50 * time.Millisecond)
	if granted(t, table, scope{collection: "db.threads", ids: []string{"z"}}) {
		t.Fatal("an update by _id overtook a waiting collection-wide update")
	}
	release()
	select {
	case undo := <-whole:
		undo()
	case <-time.After(time.Second):
		t.Fatal("the collection-wide update never ran")
	}
}

// buildOpMsg builds an OP_MSG: the command document, then kind-1 sequences.
func buildOpMsg(t *testing.T, body bson.D, sequences map[string][]bson.D) []byte {
	t.Helper()
	raw, err := bson.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	message := make([]byte, headerSize+4)
	binary.LittleEndian.PutUint32(message[12:16], opMsg)
	message = append(message, 0)
	message = append(message, raw...)
	for identifier, docs := range sequences {
		section := []byte(identifier + "\x00")
		for _, doc := range docs {
			encoded, err := bson.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			section = append(section, encoded...)
		}
		size := make([]byte, 4)
		binary.LittleEndian.PutUint32(size, uint32(len(section)+4))
		message = append(append(append(message, 1), size...), section...)
	}
	binary.LittleEndian.PutUint32(message[0:4], uint32(len(message)))
	return message
}

func TestUpdatesPinnedByIDLockOnlyThoseDocuments(t *testing.T) {
	message := buildOpMsg(t, bson.D{{Key: "update", Value: "threads"}, {Key: "$db", Value: "it"}},
		map[string][]bson.D{"updates": {
			{{Key: "q", Value: bson.D{{Key: "_id", Value: "t1"}, {Key: "firm", Value: "f"}}}},
			{{Key: "q", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"t2", int32(3)}}}}}}},
			{{Key: "q", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$eq", Value: 3.0}}}}}},
		}})
	got := readRequest(message)
	if got.lockFree || got.scope.everything || got.scope.collection != "it.threads" {
		t.Fatalf("scope %+v", got)
	}
	if ids := uniqueSorted(got.scope.ids); len(ids) != 3 {
		t.Fatalf("ids %q: want t1, t2 and the number 3 once (3 and 3.0 are one _id)", ids)
	}
}

func TestFiltersNotPinnedByIDHoldTheCollection(t *testing.T) {
	for name, filter := range map[string]bson.D{
		"by firm":      {{Key: "firm", Value: "f"}},
		"_id range":    {{Key: "_id", Value: bson.D{{Key: "$gt", Value: "a"}}}},
		"_id document": {{Key: "_id", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 2}}}},
	} {
		message := buildOpMsg(t, bson.D{
			{Key: "delete", Value: "threads"}, {Key: "$db", Value: "it"},
			{Key: "deletes", Value: bson.A{bson.D{{Key: "q", Value: filter}, {Key: "limit", Value: 0}}}},
		}, nil)
		got := readRequest(message)
		if got.lockFree || got.scope.everything || got.scope.collection != "it.threads" || got.scope.ids != nil {
			t.Fatalf("%s: scope %+v", name, got.scope)
		}
	}
	findAndModify := buildOpMsg(t, bson.D{
		{Key: "findAndModify", Value: "jobs"}, {Key: "$db", Value: "it"},
		{Key: "query", Value: bson.D{{Key: "_id", Value: "j1"}}},
	}, nil)
	if got := readRequest(findAndModify); got.scope.collection != "it.jobs" || len(got.scope.ids) != 1 {
		t.Fatalf("findAndModify by _id: scope %+v", got.scope)
	}
}

func TestReadsAndInsertsAreLockFreeAndSchemaChangesHoldEverything(t *testing.T) {
	insert := buildOpMsg(t, bson.D{{Key: "insert", Value: "threads"}, {Key: "$db", Value: "it"}}, nil)
	if got := readRequest(insert); !got.lockFree {
		t.Fatalf("insert: %+v", got)
	}
	createIndexes := buildOpMsg(t, bson.D{{Key: "createIndexes", Value: "threads"}, {Key: "$db", Value: "it"}}, nil)
	if got := readRequest(createIndexes); got.lockFree || !got.scope.everything {
		t.Fatalf("createIndexes: %+v", got)
	}
	if got := readRequest(append(buildOpMsg(t, bson.D{{Key: "update", Value: "t"}}, nil)[:headerSize+4], 7)); !got.scope.everything {
		t.Fatalf("an unreadable message: %+v", got)
	}
}

func TestAtMostMaxWritersRunAtOnce(t *testing.T) {
	table := newLockTable(2)
	first := table.acquire(scope{collection: "db.threads", ids: []string{"a"}})
	second := table.acquire(scope{collection: "db.threads", ids: []string{"b"}})
	if granted(t, table, scope{collection: "db.threads", ids: []string{"c"}}) {
		t.Fatal("a third writer ran beside two")
	}
	first()
	if !granted(t, table, scope{collection: "db.threads", ids: []string{"c"}}) {
		t.Fatal("a freed slot was not taken")
	}
	second()
}
