package obo

import (
	"github.com/azcredkit/azcredkit/internal/entra"
)

// spanName is the name of the OBO credential's GetToken spans.
var spanName = entra.SpanName(credName)
