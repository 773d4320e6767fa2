-- Usage retention rolls old minutes into their hour and old hours into their day; these find
-- the rows still to roll up without scanning the rolled ones.
CREATE INDEX usage_unrolled_hour ON usage_minutes(minute) WHERE minute % 60 != 0;
CREATE INDEX usage_unrolled_day ON usage_minutes(minute) WHERE minute % 1440 != 0;
