enum _PlaceholderShadowFixtures {}
