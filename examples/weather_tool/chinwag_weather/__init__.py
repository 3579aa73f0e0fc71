"""An example chinwag tool plugin; the tools are in `chinwag_weather.tools`."""
