package bits

import "math/bits"

// ReadRice decodes len(dst) Rice-coded residuals with parameter k (at most
// 31) into dst: each a unary-coded quotient, k bits of remainder, the two
// a zigzag-coded integer. The cache is kept in locals and refilled 64 bits at
// a time; only a quotient longer than the cache or the end of the buffered
// bytes go through refill.
func (br *Reader) ReadRice(dst []int32, k uint) error {
	cache, n := br.cache, br.n
	for i := range dst {
		if n <= 56 && br.pos+8 <= len(br.buf) {
			cache, n, br.pos = load(cache, n, br.buf, br.pos)
		}
		var q uint64
		for {
			if z := uint(bits.LeadingZeros64(cache)); z < n {
				cache <<= z + 1
				n -= z + 1
				q += uint64(z)
				break
			}
			q += uint64(n)
			br.cache, br.n = 0, 0
			if err := br.refill(1); err != nil {
				return unexpected(err)
			}
			cache, n = br.cache, br.n
		}
		if n < k {
			br.cache, br.n = cache, n
			if err := br.refill(k); err != nil {
				return unexpected(err)
			}
			cache, n = br.cache, br.n
		}
		low := cache >> (64 - k) // 0 for k == 0
		cache <<= k
		n -= k
		folded := uint32(q<<k | low)
		dst[i] = int32(folded>>1) ^ -int32(folded&1)
	}
	br.cache, br.n = cache, n
	return nil
}
