package emulator

// SetTenant changes the tenant the vault names in its 401 challenge and whose tokens (tid) it
// accepts. An empty tenant refuses every token.
func (v *Vault) SetTenant(tenantID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tenant = tenantID
}

// Tenant returns the tenant whose tokens the vault accepts.
func (v *Vault) Tenant() string { return v.tenantID() }

func (v *Vault) tenantID() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.tenant
}
