package locker

// ObtainLuaForTest exposes obtain.lua to the external tests.
var ObtainLuaForTest = obtainLua
