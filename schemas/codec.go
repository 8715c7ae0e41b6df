package schemas

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// structTag makes msgpack use the json tags, so the field names seen in KV
// and on the bus are the ones the HTTP API documents.
const structTag = "json"

// encodeBufs are scratch buffers for Marshal: encoding into a fresh buffer
// grew it four or five times per object, the largest allocation of every
// write.
var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf keeps one huge object from pinning its buffer in the pool.
const maxPooledBuf = 64 << 10

// Marshal encodes v for the bus and KV.
func Marshal(v any) ([]byte, error) {
	buf := encodeBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			encodeBufs.Put(buf)
		}
	}()
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	enc.SetCustomStructTag(structTag)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("msgpack encode %T: %w", v, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// Unmarshal decodes data produced by Marshal into v. Unknown fields are
// ignored so that older components can read objects written by newer ones.
func Unmarshal(data []byte, v any) (err error) {
	if err := checkShape(data); err != nil {
		return fmt.Errorf("msgpack decode %T: %w", v, err)
	}
	dec := msgpack.GetDecoder()
	defer func() {
		// msgpack v5.4.1 panics on some malformed input (a nil where a
		// time.Time is expected, found by FuzzUnmarshal). Anyone who can
		// publish or write a key could crash every reader with it, so a panic
		// becomes a decode error. The decoder's state is unknown then: it does
		// not go back to the pool.
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack decode %T: malformed input: %v", v, r)
			return
		}
		msgpack.PutDecoder(dec)
	}()
	dec.Reset(bytes.NewReader(data))
	dec.SetCustomStructTag(structTag)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("msgpack decode %T: %w", v, err)
	}
	return nil
}

// MarshalEvents encodes the payload of one message of the EVENTS stream:
// a single event as itself, several (about one object, at one moment) as
// an array of them.
func MarshalEvents(evs []ObjectEvent) ([]byte, error) {
	if len(evs) == 1 {
		return Marshal(&evs[0])
	}
	return Marshal(evs)
}

// UnmarshalEvents decodes what MarshalEvents wrote.
func UnmarshalEvents(data []byte) ([]ObjectEvent, error) {
	if len(data) > 0 && (msgpcode.IsFixedArray(data[0]) || data[0] == msgpcode.Array16 || data[0] == msgpcode.Array32) {
		var evs []ObjectEvent
		if err := Unmarshal(data, &evs); err != nil {
			return nil, err
		}
		return evs, nil
	}
	var ev ObjectEvent
	if err := Unmarshal(data, &ev); err != nil {
		return nil, err
	}
	return []ObjectEvent{ev}, nil
}
