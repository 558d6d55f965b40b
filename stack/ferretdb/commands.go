package main

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

const checksumPresentFlag = 1

// request is what the proxy needs to know of one client message.
type request struct {
	command string
	// lockFree: the command changes no existing document (see lockFreeCommands).
	lockFree bool
	scope    scope
}

// readRequest finds the command of a message and, for read-modify-write commands, the
// documents it can touch. Anything it cannot read takes the whole server.
func readRequest(message []byte) request {
	switch binary.LittleEndian.Uint32(message[12:16]) {
	case opMsg:
		return readOpMsg(message)
	case opQuery:
		name := opQueryCommand(message)
		return request{command: name, lockFree: lockFreeCommands[name], scope: scope{everything: true}}
	}
	return request{scope: scope{everything: true}}
}

// readOpMsg reads an OP_MSG: flag bits, then sections — kind 0, the command document;
// kind 1, a named sequence of documents (drivers send a batch's statements that way).
func readOpMsg(message []byte) request {
	everything := request{scope: scope{everything: true}}
	if len(message) < headerSize+4 {
		return everything
	}
	end := len(message)
	if binary.LittleEndian.Uint32(message[16:20])&checksumPresentFlag != 0 {
		end -= 4
	}
	var body bsoncore.Document
	sequences := map[string][]bsoncore.Document{}
	for at := headerSize + 4; at < end; {
		kind := message[at]
		at++
		switch kind {
		case 0:
			doc, _, ok := bsoncore.ReadDocument(message[at:end])
			if !ok {
				return everything
			}
			body = doc
			at += len(doc)
		case 1:
			if at+4 > end {
				return everything
			}
			size := int(binary.LittleEndian.Uint32(message[at : at+4]))
			if size < 5 || at+size > end {
				return everything
			}
			identifier, rest := cString(message[at+4 : at+size])
			for len(rest) > 0 {
				doc, remaining, ok := bsoncore.ReadDocument(rest)
				if !ok {
					return everything
				}
				sequences[identifier] = append(sequences[identifier], doc)
				rest = remaining
			}
			at += size
		default:
			return everything
		}
	}
	if body == nil {
		return everything
	}
	first, err := body.IndexErr(0)
	if err != nil {
		return everything
	}
	name := first.Key()
	if lockFreeCommands[name] {
		return request{command: name, lockFree: true}
	}
	filters, ok := statementFilters(name, body, sequences)
	database, dbOK := body.Lookup("$db").StringValueOK()
	collection, collOK := first.Value().StringValueOK()
	if !ok || !dbOK || !collOK {
		return request{command: name, scope: scope{everything: true}}
	}
	s := scope{collection: database + "." + collection}
	for _, filter := range filters {
		ids, pinned := pinnedIDs(filter)
		if !pinned {
			return request{command: name, scope: scope{collection: s.collection}}
		}
		s.ids = append(s.ids, ids...)
	}
	if len(s.ids) == 0 { // no statements: nothing to pin, hold the collection
		return request{command: name, scope: scope{collection: s.collection}}
	}
	return request{command: name, scope: s}
}

// statementFilters returns the filters of an update, delete or findAndModify; false for
// any other command (schema changes and the like take the whole server).
func statementFilters(name string, body bsoncore.Document, sequences map[string][]bsoncore.Document) ([]bsoncore.Document, bool) {
	field, filterKey := "", "q"
	switch strings.ToLower(name) {
	case "update":
		field = "updates"
	case "delete":
		field = "deletes"
	case "findandmodify":
		filter, ok := body.Lookup("query").DocumentOK()
		if !ok {
			return []bsoncore.Document{{5, 0, 0, 0, 0}}, true // no query: every document
		}
		return []bsoncore.Document{filter}, true
	default:
		return nil, false
	}
	statements := sequences[field]
	if array, ok := body.Lookup(field).ArrayOK(); ok {
		values, err := array.Values()
		if err != nil {
			return nil, false
		}
		for _, value := range values {
			statement, ok := value.DocumentOK()
			if !ok {
				return nil, false
			}
			statements = append(statements, statement)
		}
	}
	filters := make([]bsoncore.Document, 0, len(statements))
	for _, statement := range statements {
		filter, ok := statement.Lookup(filterKey).DocumentOK()
		if !ok {
			return nil, false
		}
		filters = append(filters, filter)
	}
	return filters, true
}

// pinnedIDs returns the `_id`s a filter can match when it pins them: `{_id: v}`,
// `{_id: {$eq: v}}` or `{_id: {$in: [...]}}` (other fields only narrow it further).
func pinnedIDs(filter bsoncore.Document) ([]string, bool) {
	value, err := filter.LookupErr("_id")
	if err != nil {
		return nil, false
	}
	operators, isDocument := value.DocumentOK()
	if !isDocument {
		key, ok := idKey(value)
		return []string{key}, ok
	}
	elements, err := operators.Elements()
	if err != nil || len(elements) != 1 {
		return nil, false
	}
	switch elements[0].Key() {
	case "$eq":
		key, ok := idKey(elements[0].Value())
		return []string{key}, ok
	case "$in":
		array, ok := elements[0].Value().ArrayOK()
		if !ok {
			return nil, false
		}
		values, err := array.Values()
		if err != nil {
			return nil, false
		}
		keys := make([]string, 0, len(values))
		for _, v := range values {
			key, ok := idKey(v)
			if !ok {
				return nil, false
			}
			keys = append(keys, key)
		}
		return keys, true
	}
	return nil, false
}

// idKey names one `_id` value so that values MongoDB finds equal get the same name:
// numbers by their value (1, 1.0 and int64 1 are one document), everything else by type
// and bytes. Values whose equality is not plain (documents, arrays, regexes, decimals)
// are refused, and the request then holds the whole collection.
func idKey(value bsoncore.Value) (string, bool) {
	switch value.Type {
	case bsontype.Int32:
		return "n" + strconv.FormatInt(int64(value.Int32()), 10), true
	case bsontype.Int64:
		return "n" + strconv.FormatInt(value.Int64(), 10), true
	case bsontype.Double:
		number := value.Double()
		if number == math.Trunc(number) && math.Abs(number) < 1<<53 {
			return "n" + strconv.FormatInt(int64(number), 10), true
		}
		return "n" + strconv.FormatFloat(number, 'g', -1, 64), true
	case bsontype.String, bsontype.ObjectID, bsontype.Boolean, bsontype.DateTime,
		bsontype.Binary, bsontype.Timestamp, bsontype.Null:
		return string([]byte{byte(value.Type)}) + string(value.Data), true
	}
	return "", false
}

// opQueryCommand returns the command of an OP_QUERY on a "$cmd" collection (drivers send
// their first handshake of a connection that way), "" for anything else.
func opQueryCommand(message []byte) string {
	if len(message) < headerSize+4 {
		return ""
	}
	// header, int32 flags, collection name, int32 skip, int32 limit, query document
	collection, rest := cString(message[headerSize+4:])
	if !strings.HasSuffix(collection, ".$cmd") || len(rest) < 8+5 {
		return ""
	}
	name, _ := cString(rest[8+5:]) // skip, limit, document length, element type
	return name
}
