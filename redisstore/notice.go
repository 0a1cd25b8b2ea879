package redisstore

import (
	"errors"
	"strconv"
	"strings"
)

// notice is one message on a stream's notify channel, as the append and
// answer scripts publish it:
//
//	e<epoch>|<offset>|<own 0|1>|<len(id)>|<id><data>
//	a<epoch>|<answer seq>|<status>|<header as JSON>
//
// An entry's notice carries the whole entry, so a follower needs no
// command per event.
type notice struct {
	answer bool
	entry  Entry // !answer; entry.Epoch is set for an answer too
	seq    int64 // answer
	status string
	header string
}

var errNotice = errors.New("malformed notification")

// parseNotice decodes a notification's payload.
func parseNotice(p string) (notice, error) {
	if p == "" {
		return notice{}, errNotice
	}
	kind := p[0]
	epoch, rest, ok := strings.Cut(p[1:], "|")
	if !ok {
		return notice{}, errNotice
	}
	switch kind {
	case 'e':
		off, rest, ok1 := strings.Cut(rest, "|")
		own, rest, ok2 := strings.Cut(rest, "|")
		idLen, rest, ok3 := strings.Cut(rest, "|")
		o, err1 := strconv.ParseUint(off, 10, 64)
		n, err2 := strconv.Atoi(idLen)
		if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || n < 0 || n > len(rest) {
			return notice{}, errNotice
		}
		return notice{entry: Entry{Epoch: epoch, Offset: o, ID: rest[:n], Own: own == "1", Data: []byte(rest[n:])}}, nil
	case 'a':
		seq, rest, ok1 := strings.Cut(rest, "|")
		status, header, ok2 := strings.Cut(rest, "|")
		n, err := strconv.ParseInt(seq, 10, 64)
		if !ok1 || !ok2 || err != nil {
			return notice{}, errNotice
		}
		return notice{answer: true, entry: Entry{Epoch: epoch}, seq: n, status: status, header: header}, nil
	}
	return notice{}, errNotice
}
