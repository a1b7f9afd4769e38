// The ControlAPI target: see DESIGN.md for what lives here. Its issue has not landed yet.
import LVSCore
