package jobops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// cursorSealer makes the job list's cursors opaque: a cursor is the list
// position the next page starts below, encrypted and authenticated (AES-GCM) for
// the owner who asked and the list it is a position of (a status's list of
// ended jobs numbers them apart), so it reveals nothing and works for
// nobody else and in no other list.
// Its key is derived from the session secret: every gateway that shares
// SESSION_SECRET reads the others' cursors.
type cursorSealer struct{ aead cipher.AEAD }

func newCursorSealer(sessionKey []byte) cursorSealer {
	m := hmac.New(sha256.New, sessionKey)
	m.Write([]byte("jobwire list cursor v2"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return cursorSealer{aead}
}

// seal returns the cursor of position pos in owner's list named list.
func (c cursorSealer) seal(owner, list string, pos uint64) string {
	plain := strconv.AppendUint(nil, pos, 10)
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plain)+c.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, plain, cursorData(owner, list)))
}

// cursorData is what a cursor is sealed for: an owner and a list (a
// list's name holds no zero byte, so the last one splits the pair: no two
// pairs make the same).
func cursorData(owner, list string) []byte { return []byte(owner + "\x00" + list) }

// open returns the list position in cursor; false if it was not sealed
// for owner and list (tampered with, made for someone else or for another
// list). No cursor is the start: 0.
func (c cursorSealer) open(owner, list, cursor string) (uint64, bool) {
	if cursor == "" {
		return 0, true
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < c.aead.NonceSize() {
		return 0, false
	}
	plain, err := c.aead.Open(nil, b[:c.aead.NonceSize()], b[c.aead.NonceSize():], cursorData(owner, list))
	if err != nil {
		return 0, false
	}
	pos, err := strconv.ParseUint(string(plain), 10, 64)
	return pos, err == nil && pos > 0
}
