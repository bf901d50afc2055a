package bus

import (
	"encoding/binary"
	"errors"
)

// ErrBadRecord means a local-log record is not an encoded Message.
var ErrBadRecord = errors.New("bad local-log record")

// AppendMessage appends m's encoding for the local log to dst: the key, the
// headers and the value, each length-prefixed (uvarint).
func AppendMessage(dst []byte, m Message) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.Key)))
	dst = append(dst, m.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
		dst = append(dst, h.Value...)
	}
	return append(dst, m.Value...)
}

// DecodeMessage decodes a Message written by AppendMessage. The result
// aliases b.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, ErrBadRecord
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	var err error
	if m.Key, err = next(); err != nil {
		return Message{}, err
	}
	if len(m.Key) == 0 {
		m.Key = nil
	}
	nh, k := binary.Uvarint(b)
	if k <= 0 || nh > uint64(len(b)) {
		return Message{}, ErrBadRecord
	}
	b = b[k:]
	for i := uint64(0); i < nh; i++ {
		key, err := next()
		if err != nil {
			return Message{}, err
		}
		val, err := next()
		if err != nil {
			return Message{}, err
		}
		m.Headers = append(m.Headers, Header{Key: string(key), Value: val})
	}
	m.Value = b
	return m, nil
}

func encodeAll(msgs []Message) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = AppendMessage(make([]byte, 0, len(m.Key)+len(m.Value)+8), m)
	}
	return out
}
