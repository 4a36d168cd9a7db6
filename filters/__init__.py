"""The paper's filter rules as pure functions: image size and aspect, Chinese word count,
meaningless captions, caption frequency, person-name masking and sensitive words.

No Beam, no torch, no I/O: every rule takes values and returns a drop reason or a new caption.
"""
