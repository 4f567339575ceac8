package safetext

import "strings"

// SentenceBreak returns what goes between text and a following sentence: " " when text already
// ends a sentence ('.', '!' or '?', as Entra's and Key Vault's messages do), else ". ". It keeps
// joined messages from reading "a disabled secret.. To fix".
func SentenceBreak(text string) string {
	t := strings.TrimRight(text, " ")
	if strings.HasSuffix(t, ".") || strings.HasSuffix(t, "!") || strings.HasSuffix(t, "?") {
		if len(t) < len(text) {
			return ""
		}
		return " "
	}
	return ". "
}
