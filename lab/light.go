package lab

// maxNodes is the largest rack a spec may ask for: the nine-node lab,
// or 64 light nodes (the /31 plan holds 128 per ToR).
func (s Spec) maxNodes() int {
	if s.Light {
		return 64
	}
	return 9
}
